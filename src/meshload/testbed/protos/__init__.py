"""Protocol files the testbed serves; loaded at run time by `meshload.testbed.ratings_proto`."""
