# inference_schema decorators, as Azure ML's samples use them: the server parses the JSON body
# and passes run() its "data" entry converted to a numpy array; swagger.json is generated.
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


input_sample = np.array([[10.0, 9.0, 8.0, 7.0], [1.0, 2.0, 3.0, 4.0]])
output_sample = np.array([34.0, 10.0])


@input_schema("data", NumpyParameterType(input_sample))
@input_schema("scale", StandardPythonParameterType(1.0))
@output_schema(NumpyParameterType(output_sample))
def run(data, scale=1.0):
    assert isinstance(data, np.ndarray), type(data)
    return (data.sum(axis=1) * scale).tolist()
