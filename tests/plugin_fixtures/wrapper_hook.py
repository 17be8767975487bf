"""A plugin that tries to wrap a hook (pluggy's wrapper=True): the kernel refuses it."""

from collections.abc import Generator
from typing import Any

from kernel import Manifest, NavItem, User, hookimpl


@hookimpl
def manifest() -> Manifest:
    return Manifest(name="wrapper_hook", title="Wrapper hook", version="1.0", description="Wraps nav_items.")


@hookimpl(wrapper=True)
def nav_items(user: User | None) -> Generator[None, list[Any], list[Any]]:
    answers = yield
    return [*answers, NavItem("Injected", "/wrapper_hook/")]
