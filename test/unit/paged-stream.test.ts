import { describe, expect, it } from 'vitest'
import { pagedStream } from '../../src/persistence/paged-stream.js'

async function* pagesOf<T>(pages: T[][], onEnd?: () => void): AsyncGenerator<T[]> {
  try {
    for (const page of pages) {
      await Promise.resolve()
      yield page
    }
  } finally {
    onEnd?.()
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<unknown[]> {
  const items: unknown[] = []
  for await (const item of stream) items.push(item)
  return items
}

describe('pagedStream', () => {
  it('reads every item of every page in order, past empty pages', async () => {
    const stream = pagedStream(pagesOf([[1, 2, 3], [], [], [4], [5, 6]]))
    expect(await readAll(stream)).toEqual([1, 2, 3, 4, 5, 6])
  })

  it('ends at once for no pages, and for only empty ones', async () => {
    expect(await readAll(pagedStream(pagesOf([])))).toEqual([])
    expect(await readAll(pagedStream(pagesOf([[], []])))).toEqual([])
  })

  it('reads the next page only when the reader has taken the one before', async () => {
    let asked = 0
    const pages: AsyncIterator<number[]> = {
      next: async () => {
        asked++
        return asked <= 3 ? { done: false, value: [asked * 10, asked * 10 + 1] } : { done: true, value: undefined }
      },
    }
    const stream = pagedStream(pages)
    await new Promise((resolve) => stream.once('readable', resolve))
    expect(asked).toBe(1)
    expect([stream.read(), stream.read()]).toEqual([10, 11])
    expect(await readAll(stream)).toEqual([20, 21, 30, 31])
  })

  it('is destroyed with the error of a page that failed', async () => {
    const pages: AsyncIterator<number[]> = {
      next: async () => {
        throw new Error('store gone')
      },
    }
    await expect(readAll(pagedStream(pages))).rejects.toThrow('store gone')
  })

  it('ends the sequence when destroyed', async () => {
    let ended = false
    const stream = pagedStream(pagesOf([[1], [2], [3]], () => (ended = true)))
    await new Promise((resolve) => stream.once('readable', resolve))
    expect(stream.read()).toBe(1)
    stream.destroy()
    await new Promise((resolve) => stream.once('close', resolve))
    expect(ended).toBe(true)
  })
})
