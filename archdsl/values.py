"""The argument converters' first home, kept so that plugins written against `archdsl.values` keep
working: they live in `archdsl.converters` now."""

from .converters import *  # noqa: F403
