"""The local engines as real processes, and checks of the cluster's."""

from workbench.services.manager import SERVICES, ServiceManager, ServiceStatus

__all__ = ["SERVICES", "ServiceManager", "ServiceStatus"]
