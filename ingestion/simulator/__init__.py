"""Synthetic AI traffic sent to Keel as real OTLP: the demo's story and a load generator.

``Simulation`` backfills history and sends live traffic; ``incident_schedule`` says exactly which incidents
happen when (deterministic from the seed), so end-to-end tests can assert that each one is caught.
"""

from ingestion.simulator.incidents import KINDS, Incident, incident_schedule, parse_kinds
from ingestion.simulator.otlp import SimulatorError, probe
from ingestion.simulator.runner import Simulation, SimulationConfig

__all__ = [
    "KINDS",
    "Incident",
    "Simulation",
    "SimulationConfig",
    "SimulatorError",
    "incident_schedule",
    "parse_kinds",
    "probe",
]
