"""Prefect around the runs: the server's setup, the alerts, and the project's deployments.

prefect_setup.py  `rootfi-sync setup`: work pool, the key's Secret block, the shared rate
                  limit, the alerts; `resolve_api_key` for a run
alerts.py         the automations `setup --notify` creates, kept by name
project.py        the project's root folder and the flows `prefect.yaml` names
"""
