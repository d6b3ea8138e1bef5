import type { Profile } from '../scenario/resolve-scenario.js'
import { fillTemplate } from '../util/units.js'

/** The client id of device `index` of `profile`; it doubles as the device id in payloads. */
export function deviceIdFor(profile: Profile, index: number, run: number): string {
  return fillTemplate(profile.clientId, { profile: profile.name, index, run })
}

export function deviceTopic(template: string, profile: Profile, index: number, deviceId: string, run: number, seq?: number): string {
  return fillTemplate(template, { deviceId, profile: profile.name, index, run, ...(seq === undefined ? {} : { seq }) })
}
