"""Re-export: the config base lives with the engine (``flows.engine.config``), which every stage may import."""
from flows.engine.config import Config

__all__ = ["Config"]
