"""portside: ECS-style dynamic port mapping plus a built-in L7 load balancer, for machines you own."""

__version__ = "0.1.0"
