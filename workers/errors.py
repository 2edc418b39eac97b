"""The one error every client raises when its dependency cannot be reached in time.

The front door maps it to 503 ``dependency_unavailable``; tasks retry it with backoff.
Messages name the dependency, never a URL with credentials.
"""


class DependencyUnavailable(Exception):
    def __init__(self, dependency: str, detail: str = "") -> None:
        self.dependency = dependency
        self.detail = detail
        super().__init__(f"{dependency} is unavailable" + (f": {detail}" if detail else ""))
