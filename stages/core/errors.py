"""The one exception type that means "the user's input or config is wrong".

The CLI turns it into exit code 2 and a one-paragraph message without a traceback; anything
else is a bug (exit code 1, traceback kept). Messages name the file, row and field at fault.
"""


class UserError(Exception):
    """Bad input data, bad config or a bad flag. Shown to the user as-is; exit code 2."""


def where(path: object = None, row: object = None, field: str | None = None) -> str:
    """Format a location like `rooms.jsonl, line 3, field room_size.x` for error messages."""
    parts = []
    if path is not None:
        parts.append(str(path))
    if row is not None:
        parts.append(f"line {row}" if str(path).endswith(".jsonl") else f"row {row}")
    if field:
        parts.append(f"field {field}")
    return ", ".join(parts)
