"""Each task: two named requests, one after the other; the second fails the locustfile's own check
(the server answers 200 "ok"), as a check on a page's content would."""

from locust import task
from locust.contrib.fasthttp import FastHttpUser


class Shopper(FastHttpUser):
    @task
    def shop(self) -> None:
        self.client.get("/", name="front")
        with self.client.get("/item", name="item", catch_response=True) as response:
            if response.text != "in stock":
                response.failure("the item is not in stock")
