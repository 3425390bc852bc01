"""The controllers: loops that act on their own, over the store, without a request.

``services`` (the ECS service scheduler: placement of new copies, target registration, drains,
replacements), ``scaling`` (Application Auto Scaling: measures and decides) and ``liveness``
(agents that stopped calling). The rest of ``control/`` answers API operations, one module per
resource; controllers and operations meet only in the store and the plane's hooks.
"""
