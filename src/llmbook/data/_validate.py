"""The argument check the data generators share.

Used in every chapter, through the data modules that check their arguments with it.
"""


def check_int(name: str, value, minimum: int) -> None:
    """Raise TypeError if `value` is not an int, ValueError if it is below `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
