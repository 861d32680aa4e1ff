"""Fixtures of the render tests: the real-process services of tests/services.py."""

from tests.services import module_services, services

__all__ = ["module_services", "services"]
