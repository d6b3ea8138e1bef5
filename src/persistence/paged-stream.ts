import { Readable } from 'node:stream'

/**
 * A Readable (object mode) of the items of an async sequence of pages, for a session's queue
 * drain: one promise per page read from the store, where `Readable.from` over an async generator
 * awaits every single item. The next page is read when the reader has taken what was pushed;
 * destroying the stream ends the sequence (its `return()`).
 */
export function pagedStream<T>(pages: AsyncIterator<T[]>): Readable {
  let reading = false
  const stream: Readable = new Readable({
    objectMode: true,
    highWaterMark: 1,
    read() {
      if (reading) return
      reading = true
      const readPage = (): void => {
        pages.next().then(
          (step) => {
            if (stream.destroyed) return
            if (step.done === true) {
              reading = false
              stream.push(null)
              return
            }
            // a page of nothing (every row expired) pushes nothing, so nothing would ask again
            if (step.value.length === 0) return readPage()
            reading = false
            for (const item of step.value) stream.push(item)
          },
          (err: unknown) => stream.destroy(err as Error),
        )
      }
      readPage()
    },
    destroy(err, callback) {
      const end = pages.return?.(undefined)
      if (end === undefined) return callback(err)
      end.then(
        () => callback(err),
        () => callback(err),
      )
    },
  })
  return stream
}
