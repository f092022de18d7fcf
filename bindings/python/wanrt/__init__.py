"""wanrt: run the Wan 2.2 video models from Python (bindings of the C++ runtime).

    import wanrt
    bundle = wanrt.Bundle("/path/to/bundle")
    frames, report = bundle.generate(prompt="a fox in the snow", frames=17, seed=3)
    # frames: numpy uint8 [F, H, W, 3]; report: dict (plan, times, peaks)

Errors are raised as subclasses of wanrt.Error, one per category, each with a `hint`.
"""


class Error(Exception):
    """A wanrt failure: `message`, `hint` (what to do about it) and `category`."""

    category = "internal"

    def __init__(self, message, hint=""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self):
        return self.message + (f"\nhint: {self.hint}" if self.hint else "")


class UsageError(Error, ValueError):
    """Bad arguments or request values."""
    category = "usage"


class BundleError(Error):
    """A missing or malformed model bundle."""
    category = "bundle"


class ResourcesError(Error):
    """The machine lacks something (device, RAM, capability), or the request does not fit."""
    category = "resources"


class OutOfMemoryError(Error, MemoryError):
    """Out of memory after every fallback."""
    category = "out-of-memory"


class CancelledError(Error):
    """The run was cancelled (Ctrl-C raises KeyboardInterrupt instead)."""
    category = "cancelled"


class InternalError(Error):
    """A bug in wanrt."""
    category = "internal"


from ._wanrt import Bundle, set_host_allocator, version  # noqa: E402  (the classes above must exist first)

__all__ = ["Bundle", "set_host_allocator", "version", "Error", "UsageError", "BundleError", "ResourcesError",
           "OutOfMemoryError", "CancelledError", "InternalError"]
__version__ = version()
