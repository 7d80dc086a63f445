"""MLproject entry point ``optical_main``: the whole optical pipeline (``seaice optical pipeline --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("optical", "pipeline")
