// Validates a CycloneDX JSON SBOM with CycloneDX's own library (its strict
// JSON schema of the SBOM's specVersion): make sbom. Exit 0 and "valid", or 1
// with the schema's complaints.
import { Validation } from '@cyclonedx/cyclonedx-library'
import { readFileSync } from 'node:fs'

const text = readFileSync(process.argv[2], 'utf8')
const version = JSON.parse(text).specVersion
const errors = await new Validation.JsonStrictValidator(version).validate(text)
if (errors !== null) {
  console.error(JSON.stringify(errors, null, 1))
  process.exit(1)
}
console.log(`${process.argv[2]}: valid CycloneDX ${version} (strict schema, @cyclonedx/cyclonedx-library)`)
