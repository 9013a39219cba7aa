"""The error category of avatar creation/loading; its message is shown to the user as is."""


class AvatarError(ValueError):
    """A photo or bundle cannot become an avatar (one line, no traceback, for the user)."""
