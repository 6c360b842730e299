"""Teacher–Student episode protocols: the task logic that live routing envs drive."""

from __future__ import annotations

from typing import Any, Mapping

from routing_gym.protocols.base import (
    ROLES,
    STUDENT,
    TEACHER,
    EpisodeState,
    TeacherStudentProtocol,
    Turn,
)
from routing_gym.protocols.dialogue import RoundProtocol
from routing_gym.protocols.hotpotqa import HotpotQAProtocol
from routing_gym.protocols.mmlu import MMLUProtocol

#: Registered protocols by name.
PROTOCOLS: dict[str, type[TeacherStudentProtocol]] = {
    HotpotQAProtocol.name: HotpotQAProtocol,
    MMLUProtocol.name: MMLUProtocol,
}


def make_protocol(name: str, config: Mapping[str, Any] | None = None) -> TeacherStudentProtocol:
    """A protocol by registered name ("hotpotqa", "mmlu"), with ``config`` merged over its defaults."""
    if name not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {name!r}; registered: {sorted(PROTOCOLS)}.")
    return PROTOCOLS[name](config)


__all__ = [
    "PROTOCOLS",
    "ROLES",
    "STUDENT",
    "TEACHER",
    "EpisodeState",
    "HotpotQAProtocol",
    "MMLUProtocol",
    "RoundProtocol",
    "TeacherStudentProtocol",
    "Turn",
    "make_protocol",
]
