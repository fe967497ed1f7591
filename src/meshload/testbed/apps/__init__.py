"""BookInfo's four services, re-implemented on a small uvloop HTTP server (see each module)."""

from .details import DetailsApp
from .productpage import ProductPageApp
from .ratings import RatingsApp
from .reviews import ReviewsApp

APPS = {"productpage": ProductPageApp, "details": DetailsApp, "reviews": ReviewsApp, "ratings": RatingsApp}

__all__ = ["APPS", "DetailsApp", "ProductPageApp", "RatingsApp", "ReviewsApp"]
