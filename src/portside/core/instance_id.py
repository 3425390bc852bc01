"""What an ec2InstanceId may be: ``i-`` and 1 to 40 ASCII letters or digits.

The agent's ``--instance-id`` and RegisterContainerInstance's identity document follow one rule,
so an agent never starts with an id its control plane will refuse.
"""

from __future__ import annotations

import re

RULE = "i- and up to 40 letters or digits"
_INSTANCE_ID = re.compile(r"i-[0-9a-zA-Z]{1,40}")


def is_instance_id(text: object) -> bool:
    return isinstance(text, str) and _INSTANCE_ID.fullmatch(text) is not None
