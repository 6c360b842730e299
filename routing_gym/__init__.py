"""routing_gym: Gymnasium environments for LLM routing.

``import routing_gym`` registers every environment ID, so that
``gym.make("LLMRouting-Table-v0")`` works; ``gym.make("routing_gym:LLMRouting-Table-v0")``
works without the import.
"""

from routing_gym.envs.registration import register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["register_envs", "__version__"]
