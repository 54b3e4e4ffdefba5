package atelier

// The run query language, evaluated by the stores in their database. See docs/filter.md.
//
//	filter   := or
//	or       := and ( "or" and )*
//	and      := unary ( "and" unary )*
//	unary    := "not" unary | "(" or ")" | compare
//	compare  := field op value | field ["not"] "in" "(" value ("," value)* ")"
//	          | field "is" ["not"] "null"
//	field    := ("metrics"|"params"|"tags"|"properties"|"attributes") "." name | attribute
//	op       := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">=" | "like" | "ilike"
//	value    := 'string' | "string" | number
//	orderby  := field ["asc"|"desc"] ( "," field ["asc"|"desc"] )*

// Field kinds of the query language.
const (
	FieldMetric    = "metrics"
	FieldParam     = "params"
	FieldTag       = "tags"
	FieldProperty  = "properties"
	FieldAttribute = "attributes"
)

// Run attributes usable in filters and orderings.
var RunAttributes = []string{"id", "name", "status", "experiment", "parent_id", "created_by",
	"compute", "created_at", "started_at", "ended_at", "duration"}

// FilterField names what a comparison looks at.
type FilterField struct {
	Kind string `json:"kind"` // one of the Field* constants
	Name string `json:"name"`
}

// FilterValue is a literal: a string or a number.
type FilterValue struct {
	Str      string  `json:"str,omitempty"`
	Num      float64 `json:"num,omitempty"`
	IsNumber bool    `json:"is_number,omitempty"`
}

// FilterExpr is a node of a parsed filter: *FilterCompare, *FilterAnd, *FilterOr or *FilterNot.
type FilterExpr interface{ filterExpr() }

// FilterCompare compares a field with a value (or a list for "in"/"not in", nothing for "is null").
// Op is normalized: "=", "!=", "<", "<=", ">", ">=", "like", "ilike", "in", "not in", "is null", "is not null".
type FilterCompare struct {
	Field  FilterField   `json:"field"`
	Op     string        `json:"op"`
	Value  FilterValue   `json:"value"`
	Values []FilterValue `json:"values,omitempty"`
	Pos    int           `json:"pos"` // byte offset of the field in the source, for messages
}

// FilterAnd holds when both sides hold.
type FilterAnd struct{ Left, Right FilterExpr }

// FilterOr holds when either side holds.
type FilterOr struct{ Left, Right FilterExpr }

// FilterNot holds when X does not.
type FilterNot struct{ X FilterExpr }

func (*FilterCompare) filterExpr() {}
func (*FilterAnd) filterExpr()     {}
func (*FilterOr) filterExpr()      {}
func (*FilterNot) filterExpr()     {}

// OrderTerm is one key of an ordering.
type OrderTerm struct {
	Field FilterField `json:"field"`
	Desc  bool        `json:"desc"`
}
