"""MLproject entry point ``main``: the whole pipeline (``seaice pipeline --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("pipeline")
