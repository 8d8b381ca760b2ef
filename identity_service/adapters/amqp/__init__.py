"""The identity service's RabbitMQ edge: the courier's consumer of import-job events (notifications)."""
