"""Configuration: every option declared once in ``settings.py``, read by ``loading.py``.

``parsers`` turn text into values, ``options`` is the declaration form, ``settings`` the options,
``loading`` the environment and flags with the checks across options, ``describe`` the flags and
the README table. To add an option, see ``settings.py``: one field is the whole change (then
``make docs``).
"""

from gateway.config.describe import add_arguments, describe, overrides_from_args
from gateway.config.loading import ConfigError, load_settings, validate
from gateway.config.options import Option, option
from gateway.config.parsers import IPNetwork, parse_bool, parse_duration
from gateway.config.settings import OPTIONS, Settings, redact

__all__ = [
    "OPTIONS",
    "ConfigError",
    "IPNetwork",
    "Option",
    "Settings",
    "add_arguments",
    "describe",
    "load_settings",
    "option",
    "overrides_from_args",
    "parse_bool",
    "parse_duration",
    "redact",
    "validate",
]
