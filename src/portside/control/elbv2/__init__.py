"""The ELBv2 (Application Load Balancer) control plane: one module per resource.

``load_balancers``, ``target_groups``, ``targets``, ``listeners``, ``rules``, ``tags`` and
``certificates`` hold the API operations (wired in ``api/elbv2.py``); ``config`` turns the stored
records into the data plane's ``LbConfig`` and drives the ``LbRuntime`` (``plane.lb``);
``common`` has the shared errors, ARNs, lookups and paging.
"""
