"""SLA clocks: update obligations of open tickets, their calendars, timers and alerts."""
