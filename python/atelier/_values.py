"""What a metric value may be, checked when it is logged.

A value is converted to plain Python (float, int, bool, str, None, lists and dicts) by the logging
call itself, so a value the server cannot take fails that call and never reaches a batch, where
it would have the whole batch refused. numpy, torch and friends are recognised by what they do
(``shape``, ``item()``, ``tolist()``, ``__float__``, ``__index__``), never imported: the SDK is
standard library only.
"""

import math
import numbers

__all__ = ["to_metric_float", "to_metric_json"]

_NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _show(v):
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _is_complex(v):
    return isinstance(v, complex) or (isinstance(v, numbers.Complex) and not isinstance(v, numbers.Real))


def _item(v):
    """The Python scalar of a numpy scalar, a 0-d array or a 0-d tensor; v itself when it has
    none. An array of another shape is an error: it is not one number."""
    shape = getattr(v, "shape", None)
    if shape is None or isinstance(v, (str, bytes)):
        return v
    try:
        shape = tuple(shape)
    except TypeError:
        return v
    if shape != ():
        raise TypeError("is an array of shape %s, not a single number" % (shape,))
    item = getattr(v, "item", None)
    if not callable(item):
        return v
    got = item()
    # numpy's longdouble answers itself: float() is the way to a Python number then.
    return v if type(got) is type(v) else got


def _float(v):
    """v as a float, or TypeError / ValueError saying why it is not a number."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (str, bytes, bytearray)):
        raise TypeError("is text, not a number")
    if v is None:
        raise TypeError("is None, not a number")
    v = _item(v)
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if _is_complex(v):
        raise TypeError("is a complex number")
    try:
        return float(v)  # float subclasses (numpy.float64), __float__, __index__, Decimal, Fraction
    except OverflowError:
        raise ValueError("is too large for a 64-bit float") from None
    except (TypeError, ValueError) as e:
        raise TypeError("is not a number (%s)" % e) from None


def to_metric_float(name, value):
    """A scalar metric value as a plain float: Python numbers, numpy scalars of every width,
    0-d arrays and tensors, Decimal, Fraction, anything with __float__ or __index__; booleans
    become 1.0 and 0.0. Anything else raises TypeError (ValueError for an int beyond the range of
    a float), naming the metric."""
    if type(value) is float:
        return value
    try:
        return _float(value)
    except TypeError as e:
        hint = " (use run.tag() or run.log_param() for text)" if isinstance(value, (str, bytes)) else ""
        raise TypeError("metric %r: value %s of type %s %s%s"
                        % (name, _show(value), type(value).__name__, e, hint)) from None
    except ValueError as e:
        raise ValueError("metric %r: value %s %s" % (name, _show(value), e)) from None


def _json(v, depth):
    if v is None or type(v) in (str, bool, int):
        return v
    if type(v) is float:
        return v if math.isfinite(v) else _NONFINITE[repr(v)]
    if depth > 100:
        raise ValueError("is nested more than 100 levels deep")
    if isinstance(v, str):
        return str(v)  # numpy.str_ and other str subclasses
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            k = _json(k, depth + 1)
            out[k if isinstance(k, str) else str(k)] = _json(x, depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        return [_json(x, depth + 1) for x in v]
    shape = getattr(v, "shape", None)
    tolist = getattr(v, "tolist", None)
    if shape is not None and callable(tolist) and not isinstance(v, (bytes, bytearray)):
        try:
            scalar = tuple(shape) == ()
        except TypeError:
            scalar = False
        if not scalar:  # numpy arrays, tensors, pandas series: their values, as nested lists
            return _json(tolist(), depth + 1)
        got = _item(v)
        if type(got) is not type(v):
            return _json(got, depth + 1)
    if isinstance(v, int):
        return int(v)  # int subclasses; JSON holds integers of any size
    if isinstance(v, (bytes, bytearray)):
        raise TypeError("is bytes, not text or a number")
    if hasattr(v, "__index__") and not _is_complex(v):
        try:
            return int(v.__index__())  # numpy integers, exactly
        except TypeError:
            pass
    if _is_complex(v) or isinstance(v, numbers.Number) or hasattr(v, "__float__"):
        return _json(_float(v), depth + 1)
    raise TypeError("of type %s cannot be logged: log numbers, text, booleans, None, and lists or "
                    "dicts of them (str() it to log it as text)" % type(v).__name__)


def to_metric_json(name, kind, value):
    """value converted to what json.dumps writes as strict JSON: every kind of number becomes a
    JSON number (NaN and the infinities the strings atelier uses), arrays become lists. A value
    that cannot be sent raises TypeError or ValueError naming the metric."""
    try:
        return _json(value, 0)
    except TypeError as e:
        raise TypeError("%s %r: a value %s" % (kind, name, e)) from None
    except ValueError as e:
        raise ValueError("%s %r: a value %s" % (kind, name, e)) from None
