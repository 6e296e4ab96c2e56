import time


def now_us() -> int:
    """Microseconds since the epoch: the unit of every stored time."""
    return time.time_ns() // 1000
