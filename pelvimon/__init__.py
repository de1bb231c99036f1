"""pelvimon: live pelvic-drop monitor for runners, from one sacral IMU over Bluetooth LE.

The import package maps the repository folders ``firmware_protocols/``, ``sensors/``, ``dsp/`` and
``gui/`` to ``pelvimon.firmware_protocols``, ``pelvimon.sensors``, ``pelvimon.dsp`` and ``pelvimon.gui``.
This module stays import-light: lower layers import through it.
"""

__version__ = "0.1.0"
