"""Each task: one request (what the stall server's analytic truth is derived for)."""

from locust import task
from locust.contrib.fasthttp import FastHttpUser


class Visitor(FastHttpUser):
    @task
    def visit(self) -> None:
        self.client.get("/", name="visit")
