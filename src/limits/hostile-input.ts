/**
 * [MQTT-1.5.4-1] [MQTT-1.5.4-2] A UTF-8 string in a packet must be well-formed and must not
 * contain U+0000; otherwise the packet is malformed and the connection is closed. mqtt-packet
 * decodes strings leniently, turning invalid UTF-8 into U+FFFD, so U+FFFD here means the client
 * sent bytes that are not UTF-8 (a client that really means U+FFFD in a topic is refused too:
 * the price of not re-parsing every string). Lone surrogates cannot come out of the decoder but
 * are checked for programmatic input.
 */
export function isMalformedString(value: string | undefined): boolean {
  if (value === undefined) return false
  return /[\u0000\uFFFD]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)
}

/** Length in bytes on the wire, the unit MQTT limits are stated in. */
export function utf8Length(value: string): number {
  return Buffer.byteLength(value, 'utf8')
}
