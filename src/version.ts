/** mwi's version, reported by `tbot version`, heartbeats and /v1/ping. */
export const VERSION = '0.1.0';
