"""Notifier plug-ins: SMS and pager providers configured in the policy's ``notifiers:`` map.

A channel's ``plugin`` is one of

* ``http`` — :class:`alerting.notify.HttpProviderNotifier`, a generic adapter for the HTTP
  APIs most SMS and paging providers offer (POST JSON, bearer token, 2xx = accepted);
* an entry point name in the group :data:`ENTRY_POINT_GROUP` (``vward.notifiers``), so a
  provider package installed next to virtualward registers itself;
* an import path ``package.module:factory``.

A factory is called with the channel's ``settings`` mapping and returns an object with
``send(item)`` (:class:`alerting.outbox.Notifier`). Secrets never sit in the policy file:
settings name the environment variable that holds them (``token_env``), read when the
notifier is built. Building is also what ``vward alerting --check-policy`` does, so a typo in a
plug-in name or a missing setting fails the check, not the first page at 3 a.m.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, Final, cast

from alerting.errors import AlertingError
from alerting.notify import HttpProviderNotifier
from alerting.outbox import Notifier
from alerting.policy import NotifierSpec

ENTRY_POINT_GROUP: Final = "vward.notifiers"

Factory = Callable[[Mapping[str, Any]], Notifier]


class PluginError(AlertingError):
    """A notifier plug-in that cannot be found or built; the message names the channel."""


def http_factory(settings: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Notifier:
    """The built-in ``http`` plug-in: ``url`` or ``url_env``, optional ``token_env``,
    ``timeout_s``, ``max_chars``."""
    environ = os.environ if environ is None else environ
    url = settings.get("url")
    url_env = settings.get("url_env")
    if url is None and url_env is not None:
        url = environ.get(str(url_env))
        if not url:
            raise ValueError(f"settings.url_env names {url_env!r}, which is not set")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"settings.url must be an http(s) URL, got {url!r}")
    token: str | None = None
    token_env = settings.get("token_env")
    if token_env is not None:
        token = environ.get(str(token_env))
        if not token:
            raise ValueError(f"settings.token_env names {token_env!r}, which is not set")
    return HttpProviderNotifier(url, token=token, timeout=float(settings.get("timeout_s", 5.0)),
                                max_chars=int(settings.get("max_chars", 160)))


def _resolve(plugin: str) -> Factory:
    if plugin == "http":
        return http_factory
    if ":" in plugin:
        module_name, _, attr = plugin.partition(":")
        try:
            module = importlib.import_module(module_name)
            return cast(Factory, getattr(module, attr))
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import {plugin!r}: {exc}") from exc
    found = metadata.entry_points(group=ENTRY_POINT_GROUP, name=plugin)
    if not found:
        raise ValueError(f"no plug-in {plugin!r} (not 'http', not module:factory, and no "
                         f"entry point of that name in group {ENTRY_POINT_GROUP!r})")
    return cast(Factory, next(iter(found)).load())


def build_one(spec: NotifierSpec) -> Notifier:
    """The notifier of one channel; :class:`PluginError` names the channel and the cause."""
    try:
        notifier = _resolve(spec.plugin)(spec.settings)
    except (ValueError, TypeError) as exc:
        raise PluginError(f"notifiers.{spec.channel}: plug-in {spec.plugin!r}: {exc}") from exc
    if not callable(getattr(notifier, "send", None)):
        raise PluginError(f"notifiers.{spec.channel}: plug-in {spec.plugin!r} returned "
                          f"{type(notifier).__name__}, which has no send(item)")
    return notifier


def build(specs: Mapping[str, NotifierSpec]) -> tuple[dict[str, Notifier], list[str]]:
    """Every channel's notifier that could be built, and one problem line per one that could not."""
    built: dict[str, Notifier] = {}
    problems: list[str] = []
    for channel, spec in sorted(specs.items()):
        try:
            built[channel] = build_one(spec)
        except PluginError as exc:
            problems.append(str(exc))
    return built, problems
