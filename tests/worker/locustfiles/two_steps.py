"""Each task: two named requests, one after the other."""

from locust import task
from locust.contrib.fasthttp import FastHttpUser


class Shopper(FastHttpUser):
    @task
    def shop(self) -> None:
        self.client.get("/", name="front")
        self.client.get("/item", name="item")
