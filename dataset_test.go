package atelier

import "testing"

func TestValidateDatasetName(t *testing.T) {
	for name, ok := range map[string]bool{
		"iris": true, "diabetes dataset": true, "a.b_c-d": true, "x": true, "A 1 2": true,
		"": false, " lead": false, "trail ": false, "-x": false, "a/b": false, "tab\tname": false,
		string(make([]byte, 256)): false,
	} {
		if err := ValidateDatasetName(name); (err == nil) != ok {
			t.Errorf("ValidateDatasetName(%q) = %v, want ok %v", name, err, ok)
		}
	}
	long := make([]byte, MaxDatasetName)
	for i := range long {
		long[i] = 'a'
	}
	if err := ValidateDatasetName(string(long)); err != nil {
		t.Errorf("a name of %d letters: %v", MaxDatasetName, err)
	}
	if err := ValidateDatasetName(string(long) + "a"); err == nil {
		t.Errorf("a name of %d letters is accepted", MaxDatasetName+1)
	}
	// Environments keep their names without spaces.
	if err := ValidateEnvironmentName("my env"); err == nil {
		t.Error("an environment name with a space is accepted")
	}
}
