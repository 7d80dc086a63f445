"""MLproject entry point ``optical_predict`` (``seaice optical predict --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("optical", "predict")
