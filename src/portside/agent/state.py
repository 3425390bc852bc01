"""What an agent keeps on its own host (``--state-dir``): its port holdings and the tasks it runs.

The agent must be able to restart, and to keep its copies running and stop them cleanly, while
the control plane is unreachable; and its firewall must know every host port before a copy
starts. So the agent persists, on its host: the container instance it registered as, the last
assignment revision it saw, its port allocator (holdings and quarantine), the tasks it runs and
their task definitions, and when recently stopped tasks stopped (so their containers are
removed after ``--task-cleanup-wait``, not mistaken for orphans). One JSON file, replaced
atomically (write, fsync, rename), readable by its owner only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "agent.json"
STATE_FILE_MODE = 0o600


@dataclass
class AgentState:
    path: Path
    instance_arn: str | None = None
    revision: int = 0
    ports: dict[str, Any] | None = None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Recently stopped tasks: ARN -> {"at": stoppedAt, "task": the task} until their containers are removed.
    stopped: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> AgentState:
        path = Path(state_dir) / STATE_FILE
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError(f"a JSON object was expected, not {type(data).__name__}")
            return cls(
                path, data.get("instanceArn"), int(data.get("revision") or 0), data.get("ports"),
                dict(data.get("tasks") or {}), dict(data.get("definitions") or {}), dict(data.get("stopped") or {}),
            )
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, TypeError) as exc:  # TypeError: a field of the wrong shape
            raise ValueError(f"agent state {path} cannot be read: {exc}") from exc

    def save(self) -> None:
        data = {
            "instanceArn": self.instance_arn, "revision": self.revision, "ports": self.ports,
            "tasks": self.tasks, "definitions": self.definitions, "stopped": self.stopped,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, STATE_FILE_MODE)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, STATE_FILE_MODE)
        os.replace(temporary, self.path)
