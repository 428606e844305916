"""ecsrole: keeps AWS ECS task execution IAM roles exactly as an EcsExecutionRole declares them."""

__version__ = "0.1.0"
