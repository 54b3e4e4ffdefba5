# The floor: a score.py that does nothing.
def init():
    pass


def run(raw_data):
    return {"ok": True}
