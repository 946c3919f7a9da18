/** Version reported in Welcome and status. */
export const HUB_VERSION = "0.1.0";
