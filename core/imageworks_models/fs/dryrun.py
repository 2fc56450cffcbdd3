"""Dry runs are dry: inside :func:`dry_run` nothing is written in any registry folder, not the snapshot
cache, not the lock file (:mod:`imageworks_models.registry.store` honours it). Every core function that
takes ``dry_run`` (and ``normalize_formats`` without ``apply``) runs inside it, so the CLI, the GUI and
library callers get the same guarantee; a header or stat cache in ``cache_dir`` may still be refreshed.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Any, Callable, Iterator, TypeVar

_DRY_RUN = contextvars.ContextVar("imageworks_models_dry_run", default=False)
F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def dry_run() -> Iterator[None]:
    """Inside this block nothing is written in any registry folder; a registry edit that changed a layer
    raises instead of saving (a dry run that tried to write is a bug, never a silent write)."""
    token = _DRY_RUN.set(True)
    try:
        yield
    finally:
        _DRY_RUN.reset(token)


def in_dry_run() -> bool:
    """Whether a :func:`dry_run` block is active."""
    return _DRY_RUN.get()


def honours_dry_run(func: F) -> F:
    """Run ``func`` inside :func:`dry_run` when it is called with ``dry_run=True`` (or its keyword default is
    ``True``, as for ``purge_imported``)."""
    default = (func.__kwdefaults__ or {}).get("dry_run", False)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("dry_run", default):
            with dry_run():
                return func(*args, **kwargs)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
