// SASLprep (RFC 4013, a profile of stringprep RFC 3454): the normalisation SCRAM applies to user
// names and passwords (RFC 5802 §2.2 "Normalize"), so that "I\u00ADX" and "IX", or a full-width
// and an ASCII "A", prove the same password. The tables are RFC 3454's, written as ranges. Two
// simplifications, both on the refusing side: the bidirectional rule (§6 of RFC 3454) classifies
// letters by script rather than by the Unicode 3.2 bidi table, and "unassigned" (only refused for
// stored strings, as RFC 4013 §2.5 says) means unassigned in Node's current Unicode version.

/** B.1: mapped to nothing (soft hyphen, joiners, variation selectors, byte order mark...). */
const MAPPED_TO_NOTHING = /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/gu
/** C.1.2: non-ASCII spaces, mapped to U+0020 (and refused if still there after NFKC). */
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/gu

/** C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9 of RFC 3454. */
const PROHIBITED = new RegExp(
  [
    '[\\u00A0\\u1680\\u2000-\\u200B\\u202F\\u205F\\u3000]', // C.1.2 non-ASCII space
    '[\\u0000-\\u001F\\u007F]', // C.2.1 ASCII control
    '[\\u0080-\\u009F\\u06DD\\u070F\\u180E\\u200C\\u200D\\u2028\\u2029\\u2060-\\u2063\\u206A-\\u206F\\uFEFF\\uFFF9-\\uFFFC\\u{1D173}-\\u{1D17A}]', // C.2.2
    '[\\uE000-\\uF8FF\\u{F0000}-\\u{FFFFD}\\u{100000}-\\u{10FFFD}]', // C.3 private use
    '[\\uFDD0-\\uFDEF\\uFFFE\\uFFFF]', // C.4 non-characters in the BMP (other planes below)
    '[\\uD800-\\uDFFF]', // C.5 lone surrogates
    '[\\uFFF9-\\uFFFD]', // C.6 inappropriate for plain text
    '[\\u2FF0-\\u2FFB]', // C.7 ideographic description
    '[\\u0340\\u0341\\u200E\\u200F\\u202A-\\u202E]', // C.8 display properties
    '[\\u{E0001}\\u{E0020}-\\u{E007F}]', // C.9 tagging
  ].join('|'),
  'u',
)

/** Right-to-left letters (D.1 "RandALCat"), approximated by the scripts written right to left. */
const RAND_AL = /(?=\p{L})[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u
const RAND_AL_LETTER = /^(?=\p{L})[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]$/u
/** Left-to-right letters (D.2 "LCat"), approximated as every other letter. */
const L_LETTER = /\p{L}/u

export class SaslprepError extends Error {}

/**
 * Prepares a string. `stored: true` for strings being written to a credential store (unassigned
 * code points refused), false for strings received from a client. Throws SaslprepError.
 */
export function saslprep(input: string, { stored = false }: { stored?: boolean } = {}): string {
  const mapped = input.replace(MAPPED_TO_NOTHING, '').replace(NON_ASCII_SPACE, ' ')
  const normalized = mapped.normalize('NFKC')
  if (PROHIBITED.test(normalized)) throw new SaslprepError('contains a prohibited character')
  for (const char of normalized) {
    const cp = char.codePointAt(0)!
    // C.4 in planes 1-16: the last two code points of every plane
    if ((cp & 0xfffe) === 0xfffe) throw new SaslprepError('contains a non-character code point')
    if (stored && /\p{Cn}/u.test(char)) throw new SaslprepError('contains an unassigned code point')
  }
  if (RAND_AL.test(normalized)) {
    const chars = [...normalized]
    const hasLeftToRight = chars.some((c) => L_LETTER.test(c) && !RAND_AL_LETTER.test(c))
    if (hasLeftToRight || !RAND_AL_LETTER.test(chars[0]!) || !RAND_AL_LETTER.test(chars.at(-1)!)) {
      throw new SaslprepError('mixes right-to-left and left-to-right text')
    }
  }
  return normalized
}
