"""The history of runs and studies: the results store (SQLite or PostgreSQL), the trend of a plan's
runs with its regression mark, and the schedules that fire meshload commands."""
