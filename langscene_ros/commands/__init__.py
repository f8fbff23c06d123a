"""Sub-commands of the ``langscene`` CLI, one module each.

Every module here defines ``register(subparsers)``: it adds its sub-parser and sets
``run=<callable(args) -> int exit code>`` with ``set_defaults``. The CLI finds the modules by listing
this package, so a stage adds a command by adding a module.
"""


class UsageError(Exception):
    """Bad user input: the CLI prints ``langscene COMMAND: <message>`` on one line and exits with 2."""
