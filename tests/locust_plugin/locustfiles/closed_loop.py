"""Closed loop: each user sends two named requests, then pauses 20 ms."""

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

import meshload.locust  # noqa: F401 - the plugin, hooked in by importing it


class Reader(FastHttpUser):
    wait_time = constant(0.02)

    @task
    def read(self) -> None:
        self.client.get("/", name="front")
        self.client.get("/item", name="item")
