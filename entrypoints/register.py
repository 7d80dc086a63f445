"""MLproject entry point ``register`` (``seaice register --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("register")
