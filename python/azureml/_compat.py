"""What the azureml modules share: adopting atelier objects as their v1 classes, and the
one-line refusals of what atelier does not have."""

from atelier import AtelierError

__all__ = ["adopt", "unsupported", "AtelierError"]


def adopt(obj, cls):
    """obj (an instance of one of cls's atelier base classes) as an instance of cls. The v1
    classes add behaviour, never state set in __init__, so swapping the class is enough; it
    keeps objects the atelier SDK makes (children, lists, the run context) v1-shaped."""
    if obj is None or isinstance(obj, cls):
        return obj
    bases = tuple(b for b in cls.__mro__[1:] if b.__module__.split(".")[0] == "atelier")
    if not bases or not isinstance(obj, bases):
        raise TypeError("cannot use %s as %s" % (type(obj).__name__, cls.__name__))
    obj.__class__ = cls
    return obj


def unsupported(what, instead):
    """NotImplementedError for a v1 feature atelier does not have, naming the alternative."""
    return NotImplementedError("%s is not supported by atelier: %s" % (what, instead))
