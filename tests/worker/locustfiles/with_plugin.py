"""A locustfile written for the plugin (open loop at its own rate): in meshload's workers the plugin
stands aside and the plan's load paces the users."""

from locust import task
from locust.contrib.fasthttp import FastHttpUser

import meshload.locust


class Reader(FastHttpUser):
    wait_time = meshload.locust.open_loop(1000)

    @task
    def read(self) -> None:
        self.client.get("/", name="read")
