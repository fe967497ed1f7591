"""Open loop: all users together start OPEN_LOOP_RATE tasks per second (environment variable)."""

import os

from locust import task
from locust.contrib.fasthttp import FastHttpUser

import meshload.locust


class Visitor(FastHttpUser):
    wait_time = meshload.locust.open_loop(float(os.environ["OPEN_LOOP_RATE"]))

    @task
    def visit(self) -> None:
        self.client.get("/", name="visit")
