// "host:port" addresses, as every listen and dial address of Isthmus is written.

/**
 * Splits "host:port" (or "[v6]:port") at its last colon: the host without brackets ("" when
 * none is given), the port an integer 0-65535 (an empty one reads as 0, as Number("") does).
 * Undefined when there is no colon or the port is not such a number; what an empty host or
 * port 0 mean is the caller's to say.
 */
export function splitHostPort(address: string): { host: string; port: number } | undefined {
  const i = address.lastIndexOf(":");
  if (i < 0) return undefined;
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65_535) return undefined;
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port };
}
