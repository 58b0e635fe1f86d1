"""The `rootfi-sync` command and what only its commands use.

commands.py  the typer app: run, status, retry, init-db, seed, setup, sandbox, demo, doctor
console.py   the terminal: consoles, a run's counts as tables, running the flow here
demo.py      `rootfi-sync demo`: a whole sync into the local sandbox, nothing to configure
seed.py      sample customers into the demo's database, or one given again as consent
redrive.py   `rootfi-sync retry`: which parked customers are sent again
doctor/      `rootfi-sync doctor`: settings, databases, RootFi and Prefect, each checked
"""
